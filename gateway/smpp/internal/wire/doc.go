// Package wire is the hot-path SMPP v3.4 framing shared by package smpp and its test kit
// smsctest: PDU headers, reading length-prefixed PDUs with a sanity limit, and hand-written
// encoders/decoders for submit_sm and the short responses. Everything else goes through
// go-smpp's pdufield/pdutlv codec; TestSubmitSMMatchesGoSMPP proves the submit_sm encoder
// byte-identical to it. No I/O beyond the reader it is given, no goroutines, no allocation
// on the fast paths.
package wire
