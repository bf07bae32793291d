// Package sip places outbound voice calls over SIP trunks (on emiago/sipgo): INVITE with
// the caller ID from a pool (From and P-Asserted-Identity), an SDP offer (PCMU/PCMA),
// digest auth on 401/407, any number of provisional responses, ring timeout and CANCEL,
// prompt playback over RTP, BYE, and the outcome of every call.
//
// Place in the pipeline: dispatch ──> gateway/sip. A Trunk is one `sip` config entry and a
// dispatch.Caller; Run serves its transport, and Call blocks until the call ends.
//
// Design notes (see ../shared/notes/dependencies.md):
//   - sipgo's DialogClientSession.WaitAnswer gives up after 10 responses and Client.Do never
//     cancels, so the INVITE client transaction is driven here: every response is read,
//     CANCEL is built and sent by us, and a 2xx that crosses the CANCEL is ACKed and BYEd.
//   - A 2xx for an INVITE we abandoned (no response within answer_timeout) reaches the
//     transaction layer's unhandled-response hook and is ACKed and BYEd too.
//   - Media sits behind the small media interface (one UDP socket, pion/rtp headers, a
//     WAV file decoded once to both G.711 laws); diago is not needed for send-only prompts.
//
// The test kit uastest is a programmable SIP endpoint on loopback.
package sip
