package harness

import (
	"log/slog"

	"github.com/sendcore/sendcore/gateway"
)

// adminTokenEnv is the variable name the demo's admin token is looked up under (through
// gateway.WithLookupEnv, never the process environment).
const adminTokenEnv = "SENDCORE_ADMIN_TOKEN"

// newGateway builds the gateway with token as the bootstrap admin token ("" none).
func newGateway(cfg gateway.Config, log *slog.Logger, token string) (*gateway.Gateway, error) {
	cfg.Control.AdminTokenEnv = adminTokenEnv
	lookup := func(k string) (string, bool) {
		if k == adminTokenEnv && token != "" {
			return token, true
		}
		return "", false
	}
	return gateway.New(cfg, log, gateway.WithLookupEnv(lookup))
}

// controlAddr is the control plane's listen address.
func controlAddr(gw *gateway.Gateway, cfg gateway.Config) string {
	if a := gw.ControlAddr(); a != "" {
		return a
	}
	return cfg.Control.Addr
}
