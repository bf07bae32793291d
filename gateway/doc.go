// Package gateway reads the configuration, builds every part (embedded broker, storage,
// connections, trunks, pipeline, control plane), runs them under one errgroup, and stops
// them: Run returns only when every goroutine it started has returned.
//
// Place: cmd/sendcore ──> gateway ──> dispatch and gateway/{kafka,smpp,sip,control}.
package gateway
