package main

import (
	"context"
	"fmt"
)

func cmdBench(_ context.Context, _ []string, io stdio) int {
	fmt.Fprintln(io.err, "sendcore bench: not built yet")
	return exitFailure
}
