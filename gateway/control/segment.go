package control

import (
	"encoding/hex"
	"errors"

	"github.com/valyala/fasthttp"

	"github.com/sendcore/sendcore/segment"
)

// segmentBody is one request of the segmentation calculator (contract §4 --jsonl input).
type segmentBody struct {
	ID            string  `json:"id"`
	Text          *string `json:"text"`
	Encoding      string  `json:"encoding"`
	SmartEncoding bool    `json:"smart_encoding"`
}

type segmentPart struct {
	DataCoding byte   `json:"data_coding"`
	UDH        string `json:"udh"`  // hex
	Data       string `json:"data"` // hex: exactly the short_message bytes after the UDH
}

type segmentResult struct {
	ID       string        `json:"id,omitempty"`
	Encoding string        `json:"encoding"`
	Segments int           `json:"segments"`
	Units    int           `json:"units"`
	Parts    []segmentPart `json:"parts"`
}

// segment answers what `sendcore segment --jsonl` prints for one request.
func (s *Server) segment(ctx *fasthttp.RequestCtx, _ *params) {
	var body segmentBody
	if err := s.decodeJSON(ctx, &body); err != nil {
		s.fail(ctx, err)
		return
	}
	if body.Text == nil {
		s.fail(ctx, badField("text", "required"))
		return
	}
	opt := segment.Options{Smart: body.SmartEncoding}
	switch body.Encoding {
	case "", "auto":
		opt.Encoding = segment.Auto
	case "gsm7":
		opt.Encoding = segment.GSM7
	case "ucs2":
		opt.Encoding = segment.UCS2
	default:
		s.fail(ctx, badField("encoding", "must be auto, gsm7 or ucs2, got %q", safeText(body.Encoding)))
		return
	}
	var m segment.Message
	if err := segment.Split(&m, *body.Text, opt, 0); err != nil {
		var se *segment.Error
		if errors.As(err, &se) {
			writeError(ctx, fasthttp.StatusBadRequest, se.Code, safeText("text: "+se.Detail))
			return
		}
		s.fail(ctx, err)
		return
	}
	res := segmentResult{ID: body.ID, Encoding: m.Encoding.String(), Segments: len(m.Parts), Units: m.Units, Parts: make([]segmentPart, len(m.Parts))}
	for i, p := range m.Parts {
		sm := p.ShortMessage
		var udh []byte
		if p.UDHI && len(sm) > 0 && int(sm[0])+1 <= len(sm) {
			udh, sm = sm[:int(sm[0])+1], sm[int(sm[0])+1:]
		}
		res.Parts[i] = segmentPart{DataCoding: p.DataCoding, UDH: hex.EncodeToString(udh), Data: hex.EncodeToString(sm)}
	}
	writeJSON(ctx, fasthttp.StatusOK, res)
}
