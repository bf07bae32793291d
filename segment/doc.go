// Package segment decides what every recipient reads and what every customer is billed:
// it encodes SMS text as GSM-7 (3GPP TS 23.038) or UCS-2, counts segments, and splits a
// text into the exact short_message bytes of each submit_sm (UDH concatenation, SAR TLVs,
// or message_payload).
//
// Place in the pipeline: dispatch calls CountText and Split on every SMS; gateway/smpp
// puts the parts into submit_sm. The package is pure: no I/O, no goroutines, no clock.
// The rules are in ../shared/spec/segmentation.md.
package segment
