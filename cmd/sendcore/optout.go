package main

import (
	"context"
	"fmt"
)

func cmdOptout(_ context.Context, _ []string, io stdio) int {
	fmt.Fprintln(io.err, "sendcore optout: not built yet")
	return exitFailure
}
