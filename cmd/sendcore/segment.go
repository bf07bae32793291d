package main

import (
	"context"
	"fmt"
)

func cmdSegment(_ context.Context, _ []string, io stdio) int {
	fmt.Fprintln(io.err, "sendcore segment: not built yet")
	return exitFailure
}
