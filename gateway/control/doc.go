// Package control is the HTTP control plane (fasthttp): health, readiness, Prometheus
// metrics, and the /v1 API of contract §6 with bearer-token scopes.
//
// Place in the pipeline: an adapter beside the others, gateway/control ──> dispatch,
// storage through interfaces; gateway wires it.
package control
