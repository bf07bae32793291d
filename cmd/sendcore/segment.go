package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/sendcore/sendcore/segment"
)

// maxJSONLLine bounds one --jsonl input line; a longer line gets an error result.
const maxJSONLLine = 4 << 20

// segmentResult is one calculator result (contract §4): parts hold exactly the
// short_message bytes, split into the UDH and the rest, in hex.
type segmentResult struct {
	ID       *string       `json:"id,omitempty"`
	Encoding string        `json:"encoding"`
	Language string        `json:"language,omitempty"` // national single shift table, if one is used
	Segments int           `json:"segments"`
	Units    int           `json:"units"`
	Parts    []segmentPart `json:"parts"`
}

type segmentPart struct {
	DataCoding byte   `json:"data_coding"`
	UDH        string `json:"udh"`
	Data       string `json:"data"`
}

// segmentError is the result line of a --jsonl input that could not be segmented.
type segmentError struct {
	ID    *string          `json:"id"`
	Error segmentErrorBody `json:"error"`
}

type segmentErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// segmentRequest is the part of a send-request (contract §2) the calculator reads;
// other fields are ignored.
type segmentRequest struct {
	ID            *string `json:"id"`
	Text          *string `json:"text"`
	Encoding      *string `json:"encoding"`
	SmartEncoding *bool   `json:"smart_encoding"`
}

func cmdSegment(ctx context.Context, args []string, io stdio) int {
	fs := newFlagSet("segment", io)
	smart := fs.Bool("smart", false, "apply smart encoding (typographic lookalikes to GSM-7) first; in --jsonl the default for lines without smart_encoding")
	asJSON := fs.Bool("json", false, "print one JSON object instead of the summary")
	jsonl := fs.Bool("jsonl", false, "read request objects {id,text,encoding,smart_encoding} one per line on stdin; write one result per line")
	encName := fs.String("encoding", "auto", "auto|gsm7|ucs2 (in --jsonl the default for lines without encoding)")
	concatName := fs.String("concat", "udh8", "udh8|udh16: concatenation UDH with an 8- or 16-bit reference")
	ref := fs.Uint("ref", 0, "concatenation reference number (0..65535)")
	national := fs.String("national", "", "allow national language single shift tables: comma-separated turkish,spanish,portuguese (used only when they save segments)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), `Usage: sendcore segment [--smart] [--json] [--encoding auto|gsm7|ucs2] [--concat udh8|udh16] [--national LANGS] [TEXT...]
       sendcore segment --jsonl [flags] < requests.jsonl

Shows how a text is encoded and split into SMS parts, and how many segments are billed.
TEXT is the arguments joined by single spaces, or else stdin without one trailing newline.
In --jsonl mode a line without text (or with empty text) gets a missing_field error line,
as the gateway would reject it; other lines are never affected by a bad one.

Flags:`)
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	enc, ok := parseSegmentEncoding(*encName)
	if !ok {
		fmt.Fprintf(io.err, "sendcore segment: --encoding %q: want auto, gsm7 or ucs2\n", *encName)
		return exitUsage
	}
	var concat segment.Concat
	switch *concatName {
	case "udh8":
		concat = segment.ConcatUDH8
	case "udh16":
		concat = segment.ConcatUDH16
	default:
		fmt.Fprintf(io.err, "sendcore segment: --concat %q: want udh8 or udh16\n", *concatName)
		return exitUsage
	}
	if *ref > 0xFFFF {
		fmt.Fprintf(io.err, "sendcore segment: --ref %d: want 0..65535\n", *ref)
		return exitUsage
	}
	opt := segment.Options{Encoding: enc, Smart: *smart, Concat: concat}
	if *national != "" {
		for _, name := range strings.Split(*national, ",") {
			l, ok := segment.ParseLanguage(strings.TrimSpace(name))
			if !ok {
				fmt.Fprintf(io.err, "sendcore segment: --national %q: want turkish, spanish or portuguese\n", name)
				return exitUsage
			}
			opt.National |= segment.Languages(l)
		}
	}
	if *jsonl {
		if fs.NArg() > 0 {
			fmt.Fprintf(io.err, "sendcore segment: --jsonl reads stdin; unexpected argument %q\n", fs.Arg(0))
			return exitUsage
		}
		return segmentJSONL(ctx, io, opt, uint16(*ref))
	}

	var text string
	if fs.NArg() > 0 {
		text = strings.Join(fs.Args(), " ")
	} else {
		b, err := readAllContext(ctx, io.in)
		if err != nil {
			fmt.Fprintln(io.err, "sendcore segment: reading stdin:", err)
			return exitFailure
		}
		text = strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	}
	var m segment.Message
	if err := segment.Split(&m, text, opt, uint16(*ref)); err != nil {
		code, msg := segmentErrorCode(err)
		if *asJSON {
			_ = writeJSONLine(io.out, segmentError{Error: segmentErrorBody{Code: code, Message: msg}})
		} else {
			fmt.Fprintf(io.err, "sendcore segment: %s: %s\n", code, msg)
		}
		return exitFailure
	}
	if *asJSON {
		if err := writeJSONLine(io.out, resultOf(nil, &m)); err != nil {
			fmt.Fprintln(io.err, "sendcore segment:", err)
			return exitFailure
		}
		return exitOK
	}
	printSegmentSummary(io.out, text, &m, opt)
	return exitOK
}

func parseSegmentEncoding(s string) (segment.Encoding, bool) {
	switch s {
	case "auto", "":
		return segment.Auto, true
	case "gsm7":
		return segment.GSM7, true
	case "ucs2":
		return segment.UCS2, true
	}
	return segment.Auto, false
}

// segmentErrorCode returns the machine code and message of a Split error.
func segmentErrorCode(err error) (string, string) {
	var se *segment.Error
	if errors.As(err, &se) {
		return se.Code, se.Detail
	}
	return "internal", err.Error()
}

func resultOf(id *string, m *segment.Message) segmentResult {
	r := segmentResult{ID: id, Encoding: m.Encoding.String(), Language: m.Language.String(), Segments: m.Segments, Units: m.Units, Parts: make([]segmentPart, len(m.Parts))}
	for i, p := range m.Parts {
		udh, data := splitUDH(p)
		r.Parts[i] = segmentPart{DataCoding: p.DataCoding, UDH: hex.EncodeToString(udh), Data: hex.EncodeToString(data)}
	}
	return r
}

// splitUDH returns the UDH (with its length octet) and the rest of p's short_message.
func splitUDH(p segment.Part) (udh, data []byte) {
	sm := p.ShortMessage
	if !p.UDHI || len(sm) == 0 || int(sm[0])+1 > len(sm) {
		return nil, sm
	}
	n := int(sm[0]) + 1
	return sm[:n], sm[n:]
}

func writeJSONLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

func printSegmentSummary(w io.Writer, input string, m *segment.Message, opt segment.Options) {
	unit := "septets"
	dc := 0x00
	if m.Encoding == segment.UCS2 {
		unit, dc = "UTF-16 code units", 0x08
	}
	fmt.Fprintf(w, "encoding  %s (data_coding 0x%02X)\n", m.Encoding, dc)
	if m.Language != segment.NoLanguage {
		fmt.Fprintf(w, "language  %s single shift table (UDH IE 0x24)\n", m.Language)
	}
	fmt.Fprintf(w, "segments  %d\n", m.Segments)
	fmt.Fprintf(w, "units     %d %s\n", m.Units, unit)
	if m.Text != input {
		fmt.Fprintf(w, "text      %q (after smart encoding)\n", m.Text)
	}
	if m.Encoding == segment.UCS2 && opt.Encoding == segment.Auto {
		var non []string
		seen := map[rune]bool{}
		for _, r := range m.Text {
			if !segment.IsGSM7(r) && !seen[r] && len(non) < 10 {
				seen[r] = true
				non = append(non, fmt.Sprintf("%q U+%04X", r, r))
			}
		}
		fmt.Fprintf(w, "ucs2 by   %s\n", strings.Join(non, ", "))
		if !opt.Smart && segment.Smart(m.Text) != m.Text {
			fmt.Fprintln(w, "hint      --smart replaces typographic lookalikes and may allow GSM-7")
		}
	}
	for _, p := range m.Parts {
		udh, data := splitUDH(p)
		n := len(data)
		if m.Encoding == segment.UCS2 {
			n /= 2
		}
		udhHex := "-"
		if len(udh) > 0 {
			udhHex = hex.EncodeToString(udh)
		}
		fmt.Fprintf(w, "part %d/%d  %d %s, udh %s\n  data %s\n", p.Seq, p.Total, n, unit, udhHex, hex.EncodeToString(data))
	}
}

// segmentJSONL runs --jsonl: one result or error line per non-blank input line, in order.
func segmentJSONL(ctx context.Context, std stdio, def segment.Options, ref uint16) int {
	in := bufio.NewReaderSize(std.in, 64<<10)
	out := bufio.NewWriterSize(std.out, 64<<10)
	var m segment.Message
	for lineNo := 1; ; lineNo++ {
		if err := ctx.Err(); err != nil {
			out.Flush()
			fmt.Fprintln(std.err, "sendcore segment:", err)
			return exitFailure
		}
		line, tooLong, err := readLine(in, maxJSONLLine)
		if err != nil && !errors.Is(err, io.EOF) {
			out.Flush()
			fmt.Fprintln(std.err, "sendcore segment: reading stdin:", err)
			return exitFailure
		}
		var v any
		switch {
		case tooLong:
			v = segmentError{Error: segmentErrorBody{Code: "line_too_long", Message: fmt.Sprintf("line %d exceeds %d bytes", lineNo, maxJSONLLine)}}
		case len(strings.TrimSpace(string(line))) == 0:
			v = nil // blank line: not an input
		default:
			v = segmentLine(&m, line, lineNo, def, ref)
		}
		if v != nil {
			if werr := writeJSONLine(out, v); werr != nil {
				fmt.Fprintln(std.err, "sendcore segment: writing:", werr)
				return exitFailure
			}
		}
		if err != nil { // EOF
			break
		}
		if in.Buffered() == 0 {
			// Nothing more is waiting: flush, so an interactive caller sees its answer.
			if ferr := out.Flush(); ferr != nil {
				fmt.Fprintln(std.err, "sendcore segment: writing:", ferr)
				return exitFailure
			}
		}
	}
	if err := out.Flush(); err != nil {
		fmt.Fprintln(std.err, "sendcore segment: writing:", err)
		return exitFailure
	}
	return exitOK
}

// segmentLine returns the result or error object of one --jsonl line.
func segmentLine(m *segment.Message, line []byte, lineNo int, def segment.Options, ref uint16) any {
	var req segmentRequest
	fail := func(code, format string, a ...any) any {
		return segmentError{ID: req.ID, Error: segmentErrorBody{Code: code, Message: fmt.Sprintf(format, a...)}}
	}
	if err := json.Unmarshal(line, &req); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			// Decoding went on past the bad field: req.ID is set if id is a string.
			if te.Field == "id" {
				req.ID = nil
			}
			return fail("invalid_field", "line %d: field %s: want %s, got %s", lineNo, te.Field, te.Type, te.Value)
		}
		return fail("invalid_json", "line %d: %v", lineNo, err)
	}
	opt := def
	if req.Encoding != nil {
		e, ok := parseSegmentEncoding(*req.Encoding)
		if !ok {
			return fail("invalid_field", "line %d: field encoding: %q is not auto, gsm7 or ucs2", lineNo, *req.Encoding)
		}
		opt.Encoding = e
	}
	if req.SmartEncoding != nil {
		opt.Smart = *req.SmartEncoding
	}
	if req.Text == nil || *req.Text == "" {
		return fail("missing_field", "line %d: field text is required", lineNo)
	}
	if err := segment.Split(m, *req.Text, opt, ref); err != nil {
		code, msg := segmentErrorCode(err)
		return fail(code, "line %d: %s", lineNo, msg)
	}
	return jsonlResult{ID: req.ID, segmentResult: resultOf(nil, m)}
}

// jsonlResult is a --jsonl result line: "id" is always present (null when the request
// had none).
type jsonlResult struct {
	ID *string `json:"id"`
	segmentResult
}

// readLine returns the next line without its newline. A line longer than max is consumed
// and reported as tooLong. err is io.EOF with the last line (possibly empty).
func readLine(r *bufio.Reader, max int) (line []byte, tooLong bool, err error) {
	for {
		chunk, err := r.ReadSlice('\n')
		if !tooLong {
			if len(line)+len(chunk) > max+1 {
				tooLong, line = true, nil
			} else {
				line = append(line, chunk...)
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		line = []byte(strings.TrimSuffix(strings.TrimSuffix(string(line), "\n"), "\r"))
		return line, tooLong, err
	}
}

// readAllContext reads r to the end, giving up when ctx is done.
func readAllContext(ctx context.Context, r io.Reader) ([]byte, error) {
	var b []byte
	buf := make([]byte, 32<<10)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n, err := r.Read(buf)
		b = append(b, buf[:n]...)
		if errors.Is(err, io.EOF) {
			return b, nil
		}
		if err != nil {
			return nil, err
		}
	}
}
