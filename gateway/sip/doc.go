// Package sip places outbound voice calls over SIP trunks (on emiago/sipgo): INVITE with
// the caller ID from a pool, digest auth, ring timeout and CANCEL, prompt playback over
// RTP, BYE, and the outcome of every call.
//
// Place in the pipeline: dispatch ──> gateway/sip (a dispatch.Caller per trunk). The test
// kit uastest is a programmable SIP endpoint on loopback.
package sip
