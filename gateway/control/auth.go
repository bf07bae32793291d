package control

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Token format: "sct_" + id (16 hex digits, 64 random bits, not secret) + "_" + secret
// (32 random bytes, base64url without padding: 256 bits). Only SHA-256(token) is stored.
const (
	tokenPrefix   = "sct_"
	tokenIDLen    = 16
	tokenSecLen   = 43 // base64.RawURLEncoding of 32 bytes
	tokenLen      = len(tokenPrefix) + tokenIDLen + 1 + tokenSecLen
	tokensNS      = "tokens"
	minAdminToken = 16
	maxTokenName  = 64
)

// tokenRecord is what is stored per API token, JSON in namespace "tokens" under its id.
type tokenRecord struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Scope   string    `json:"scope"`
	Hash    string    `json:"sha256"` // hex SHA-256 of the whole token
	Created time.Time `json:"created"`

	scope scope
	hash  [sha256.Size]byte
}

// tokens authenticates bearer tokens. Reads are lock-free (copy-on-write map); writes are
// serialised by mu and persisted before they take effect.
type tokens struct {
	admin    [sha256.Size]byte // hash of the bootstrap admin token
	hasAdmin bool
	store    SettingsStore // nil: API tokens disabled

	mu   sync.Mutex // serialises create/revoke
	byID atomic.Pointer[map[string]*tokenRecord]
}

func newTokens(adminToken string, store SettingsStore) (*tokens, error) {
	t := &tokens{store: store}
	if adminToken != "" {
		if len(adminToken) < minAdminToken {
			return nil, fmt.Errorf("%w: bootstrap admin token must be at least %d characters", ErrInvalid, minAdminToken)
		}
		t.admin = sha256.Sum256([]byte(adminToken))
		t.hasAdmin = true
	}
	m := map[string]*tokenRecord{}
	if store != nil {
		err := store.ListSettings(tokensNS, func(key string, value []byte) error {
			var r tokenRecord
			if err := json.Unmarshal(value, &r); err != nil {
				return fmt.Errorf("token %q: %w", key, err)
			}
			sc, ok := parseScope(r.Scope)
			h, err := hex.DecodeString(r.Hash)
			if !ok || err != nil || len(h) != sha256.Size || r.ID != key {
				return fmt.Errorf("token %q: malformed record", key)
			}
			r.scope = sc
			copy(r.hash[:], h)
			m[key] = &r
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("control: loading tokens: %w", err)
		}
	}
	t.byID.Store(&m)
	return t, nil
}

// authenticate returns the scope of the presented token, or scopeNone when it is unknown.
// The comparison of hashes is constant-time; the map lookup is by the token's non-secret id.
func (t *tokens) authenticate(tok []byte) scope {
	if len(tok) == 0 {
		return scopeNone
	}
	h := sha256.Sum256(tok)
	if len(tok) == tokenLen && bytes.HasPrefix(tok, []byte(tokenPrefix)) && tok[len(tokenPrefix)+tokenIDLen] == '_' {
		id := tok[len(tokenPrefix) : len(tokenPrefix)+tokenIDLen]
		if r, ok := (*t.byID.Load())[string(id)]; ok && subtle.ConstantTimeCompare(h[:], r.hash[:]) == 1 {
			return r.scope
		}
	}
	if t.hasAdmin && subtle.ConstantTimeCompare(h[:], t.admin[:]) == 1 {
		return scopeAdmin
	}
	return scopeNone
}

// create makes, persists and returns a new token; the token text is returned only here.
func (t *tokens) create(name string, sc scope, now time.Time) (tokenRecord, string, error) {
	var idb [8]byte
	var sec [32]byte
	if _, err := rand.Read(idb[:]); err != nil {
		return tokenRecord{}, "", err
	}
	if _, err := rand.Read(sec[:]); err != nil {
		return tokenRecord{}, "", err
	}
	id := hex.EncodeToString(idb[:])
	tok := tokenPrefix + id + "_" + base64.RawURLEncoding.EncodeToString(sec[:])
	r := &tokenRecord{ID: id, Name: name, Scope: sc.String(), Created: now.UTC(), scope: sc, hash: sha256.Sum256([]byte(tok))}
	r.Hash = hex.EncodeToString(r.hash[:])
	v, err := json.Marshal(r)
	if err != nil {
		return tokenRecord{}, "", err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	old := *t.byID.Load()
	if _, dup := old[id]; dup { // 2^-64: retry is the caller's business
		return tokenRecord{}, "", fmt.Errorf("%w: token id collision", ErrConflict)
	}
	if err := t.store.PutSetting(tokensNS, id, v); err != nil {
		return tokenRecord{}, "", err
	}
	m := make(map[string]*tokenRecord, len(old)+1)
	for k, x := range old {
		m[k] = x
	}
	m[id] = r
	t.byID.Store(&m)
	return *r, tok, nil
}

// revoke deletes token id; false when it does not exist.
func (t *tokens) revoke(id string) (bool, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := *t.byID.Load()
	if _, ok := old[id]; !ok {
		return false, nil
	}
	if err := t.store.DeleteSetting(tokensNS, id); err != nil {
		return false, err
	}
	m := make(map[string]*tokenRecord, len(old))
	for k, x := range old {
		if k != id {
			m[k] = x
		}
	}
	t.byID.Store(&m)
	return true, nil
}

// list returns every API token's record (without hashes), in id order.
func (t *tokens) list() []tokenView {
	m := *t.byID.Load()
	out := make([]tokenView, 0, len(m))
	for _, r := range m {
		out = append(out, tokenView{ID: r.ID, Name: r.Name, Scope: r.Scope, Created: r.Created})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// tokenView is a token as listed: never its hash or text.
type tokenView struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Scope   string    `json:"scope"`
	Created time.Time `json:"created"`
}

// bearer extracts the token of an "Authorization: Bearer <token>" header value.
func bearer(h []byte) ([]byte, bool) {
	const p = "bearer "
	if len(h) <= len(p) || !bytes.EqualFold(h[:len(p)], []byte(p)) {
		return nil, false
	}
	tok := bytes.TrimSpace(h[len(p):])
	return tok, len(tok) > 0
}
