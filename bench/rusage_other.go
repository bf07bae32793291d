//go:build !unix

package bench

// SampleUsage returns zero usage where getrusage is not available.
func SampleUsage() Usage { return Usage{} }
