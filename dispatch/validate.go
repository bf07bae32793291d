package dispatch

import "github.com/sendcore/sendcore/segment"

// RequestError is why a send-request is invalid: the reason code of its rejected event
// (contract §3: invalid_json, missing_field, invalid_address, invalid_field,
// encoding_mismatch, too_long, ...) and a detail that names the field and value.
type RequestError struct {
	Reason string
	Detail string
}

func (e *RequestError) Error() string { return e.Detail }

// ValidateRequest checks one send-request record (contract §2) exactly as the pipeline's
// parse stage does, so that the control plane refuses at enqueue time what the pipeline
// would reject. maxBytes bounds the record (0: the pipeline's default). It returns nil or
// a *RequestError. Checks that need the running gateway (pools, routes) are not made.
func ValidateRequest(value []byte, maxBytes int, smartDefault bool) error {
	if maxBytes <= 0 {
		maxBytes = defaultMaxRequestBytes
	}
	p := parseRequest(value, maxBytes, smartDefault, segment.CountText)
	if p.bad != nil {
		return &RequestError{Reason: p.bad.reason, Detail: p.bad.detail}
	}
	return nil
}
