package dashboards

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"sync"
	"time"
)

// session is one signed-in browser.
type session struct {
	email   string
	csrf    string
	expires time.Time
}

// sessions holds the live sessions in memory: a restart signs everyone out.
type sessions struct {
	mu  sync.Mutex
	ttl time.Duration
	m   map[string]*session
}

func newSessions(ttl time.Duration) *sessions {
	return &sessions{ttl: ttl, m: map[string]*session{}}
}

// randomToken returns 32 random bytes, base64url-encoded.
func randomToken() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("dashboards: no randomness: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// create starts a session for email and returns its id.
func (s *sessions) create(email string, now time.Time) (string, *session) {
	id := randomToken()
	ss := &session{email: email, csrf: randomToken(), expires: now.Add(s.ttl)}
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, v := range s.m { // drop expired sessions while we hold the lock
		if now.After(v.expires) {
			delete(s.m, k)
		}
	}
	s.m[id] = ss
	return id, ss
}

// get returns the live session with id, or nil.
func (s *sessions) get(id string, now time.Time) *session {
	if id == "" {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ss := s.m[id]
	if ss == nil {
		return nil
	}
	if now.After(ss.expires) {
		delete(s.m, id)
		return nil
	}
	return ss
}

func (s *sessions) remove(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, id)
}

// throttle limits failed sign-ins per key (an e-mail address, a client
// network) within a window: after limit failures the key is refused until
// the window of its first failure has passed.
//
// An attempt is counted when it starts (take), before its password check,
// and given back if it succeeds (release): counting after the check would
// let attempts that arrive together all pass the limit while their checks
// run.
type throttle struct {
	mu     sync.Mutex
	window time.Duration
	m      map[string]*failures
}

type failures struct {
	n     int
	first time.Time
}

// limit is a throttle key and the attempts it may fail in one window.
type limit struct {
	key string
	n   int
}

// maxThrottleKeys bounds the failure table; beyond it, expired entries
// are dropped first and then the oldest.
const maxThrottleKeys = 100_000

func newThrottle(window time.Duration) *throttle {
	return &throttle{window: window, m: map[string]*failures{}}
}

// take counts one attempt against every key, unless one of them has
// reached its limit: then it counts none and returns how long to wait.
func (t *throttle) take(now time.Time, limits ...limit) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	var wait time.Duration
	for _, l := range limits {
		f := t.live(l.key, now)
		if f != nil && f.n >= l.n {
			wait = max(wait, f.first.Add(t.window).Sub(now))
		}
	}
	if wait > 0 {
		return wait
	}
	for _, l := range limits {
		f := t.live(l.key, now)
		if f == nil {
			if len(t.m) >= maxThrottleKeys {
				t.prune(now)
			}
			f = &failures{first: now}
			t.m[l.key] = f
		}
		f.n++
	}
	return 0
}

// release gives back the attempt take counted against key, for an
// attempt that did not fail.
func (t *throttle) release(key string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if f := t.live(key, now); f != nil {
		if f.n--; f.n <= 0 {
			delete(t.m, key)
		}
	}
}

// live returns key's failures in the current window, dropping an expired
// entry.
func (t *throttle) live(key string, now time.Time) *failures {
	f := t.m[key]
	if f != nil && !now.Before(f.first.Add(t.window)) {
		delete(t.m, key)
		return nil
	}
	return f
}

func (t *throttle) reset(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.m, key)
}

func (t *throttle) prune(now time.Time) {
	var oldest string
	var at time.Time
	for k, f := range t.m {
		if !now.Before(f.first.Add(t.window)) {
			delete(t.m, k)
			continue
		}
		if oldest == "" || f.first.Before(at) {
			oldest, at = k, f.first
		}
	}
	if len(t.m) >= maxThrottleKeys && oldest != "" {
		delete(t.m, oldest)
	}
}

func equalTokens(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
