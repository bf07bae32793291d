package control

import (
	"errors"
	"fmt"
	"strings"

	"github.com/valyala/fasthttp"
)

// Sentinel errors. A backend (or the gateway's adapter around it) wraps ErrInvalid to have
// the control plane answer 400 with the error's message, ErrNotFound for 404 and ErrConflict
// for 409; any other backend error is a 500 whose detail goes to the log only.
var (
	ErrInvalid  = errors.New("control: invalid input")
	ErrNotFound = errors.New("control: not found")
	ErrConflict = errors.New("control: conflict")
	// ErrUnavailable is what a nil backend part answers with (503).
	ErrUnavailable = errors.New("control: unavailable")
)

// Error codes of the {"error":{"code","message"}} body.
const (
	codeBadRequest       = "bad_request"
	codeUnauthorized     = "unauthorized"
	codeForbidden        = "forbidden"
	codeNotFound         = "not_found"
	codeMethodNotAllowed = "method_not_allowed"
	codeConflict         = "conflict"
	codeTooLarge         = "too_large"
	codeUnsupportedMedia = "unsupported_media_type"
	codeHeaderTooLarge   = "header_too_large"
	codeTimeout          = "timeout"
	codeInternal         = "internal"
	codeUnavailable      = "unavailable"
)

// fieldError is bad input naming the field (JSON path or path parameter) at fault.
type fieldError struct {
	Field string
	Msg   string
}

func (e *fieldError) Error() string { return e.Field + ": " + e.Msg }

func badField(field, format string, a ...any) error {
	return &fieldError{Field: field, Msg: fmt.Sprintf(format, a...)}
}

// writeError answers status with the contract's error body. message must not contain
// secrets; it is JSON-escaped here.
func writeError(ctx *fasthttp.RequestCtx, status int, code, message string) {
	ctx.Response.ResetBody()
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	b := make([]byte, 0, 64+len(code)+len(message))
	b = append(b, `{"error":{"code":`...)
	b = appendJSONString(b, code)
	b = append(b, `,"message":`...)
	b = appendJSONString(b, strings.ToValidUTF8(message, "\uFFFD"))
	b = append(b, "}}\n"...)
	ctx.SetBody(b)
}

// safeText makes s fit for an error message: valid UTF-8, bounded, no control characters.
func safeText(s string) string {
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}
