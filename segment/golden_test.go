package segment

import (
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/golden.json from the current output")

// goldenCase is one input of testdata/golden.json and the parts it must produce.
type goldenCase struct {
	Name     string      `json:"name"`
	Text     string      `json:"text"`
	Encoding string      `json:"encoding,omitempty"` // auto, gsm7, ucs2
	Concat   string      `json:"concat,omitempty"`   // udh8, udh16, sar, payload
	Smart    bool        `json:"smart,omitempty"`
	National []string    `json:"national,omitempty"` // turkish, spanish, portuguese
	Ref      uint16      `json:"ref"`
	Want     *goldenWant `json:"want,omitempty"`
	Error    string      `json:"error,omitempty"`
	Reviewed string      `json:"reviewed,omitempty"` // why the expected bytes are known correct
}

type goldenWant struct {
	Encoding string       `json:"encoding"`
	Language string       `json:"language,omitempty"`
	Segments int          `json:"segments"`
	Units    int          `json:"units"`
	Parts    []goldenPart `json:"parts"`
}

type goldenPart struct {
	DataCoding byte   `json:"data_coding"`
	UDHI       bool   `json:"udhi,omitempty"`
	SAR        bool   `json:"sar,omitempty"`
	Payload    bool   `json:"payload,omitempty"`
	Hex        string `json:"hex"`
}

func parseEncoding(s string) Encoding {
	switch s {
	case "gsm7":
		return GSM7
	case "ucs2":
		return UCS2
	}
	return Auto
}

func parseConcat(s string) Concat {
	switch s {
	case "udh16":
		return ConcatUDH16
	case "sar":
		return ConcatSAR
	case "payload":
		return ConcatPayload
	}
	return ConcatUDH8
}

// TestGolden compares Split's exact bytes with testdata/golden.json. The file was
// generated once with -update and its "reviewed" cases checked by hand against
// 3GPP TS 23.038/23.040.
func TestGolden(t *testing.T) {
	path := filepath.Join("testdata", "golden.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cases []goldenCase
	if err := json.Unmarshal(raw, &cases); err != nil {
		t.Fatal(err)
	}
	for i := range cases {
		c := &cases[i]
		t.Run(c.Name, func(t *testing.T) {
			opt := Options{Encoding: parseEncoding(c.Encoding), Concat: parseConcat(c.Concat), Smart: c.Smart}
			for _, n := range c.National {
				for l := Turkish; l <= Portuguese; l++ {
					if l.String() == n {
						opt.National |= Languages(l)
					}
				}
			}
			var m Message
			err := Split(&m, c.Text, opt, c.Ref)
			got := &goldenWant{Encoding: m.Encoding.String(), Segments: m.Segments, Units: m.Units, Language: m.Language.String()}
			for _, p := range m.Parts {
				got.Parts = append(got.Parts, goldenPart{DataCoding: p.DataCoding, UDHI: p.UDHI, SAR: p.SAR, Payload: p.Payload, Hex: strings.ToUpper(hex.EncodeToString(p.ShortMessage))})
			}
			gotErr := ""
			if err != nil {
				gotErr = err.(*Error).Code
				got = nil
			}
			if *update {
				c.Want, c.Error = got, gotErr
				return
			}
			if gotErr != c.Error {
				t.Fatalf("error %q, want %q", gotErr, c.Error)
			}
			gj, _ := json.Marshal(got)
			wj, _ := json.Marshal(c.Want)
			if string(gj) != string(wj) {
				t.Fatalf("got  %s\nwant %s", gj, wj)
			}
		})
	}
	if *update {
		out, err := json.MarshalIndent(cases, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, append(out, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
