package config

import (
	"fmt"
	"net/mail"
	"regexp"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// User may sign in to the web dashboard. Only a password hash is stored:
// bcrypt ($2a$/$2b$/$2y$, cost 10 or more) or argon2id in the PHC format
// ($argon2id$v=19$m=65536,t=3,p=2$salt$hash). `glimpse user add` prints
// the lines to paste.
type User struct {
	Email        string   `yaml:"email"`
	PasswordHash string   `yaml:"password_hash"`
	Sites        []string `yaml:"sites"` // the site domains this user reads; default all
}

// CanRead reports whether the user may read the site domain.
func (u *User) CanRead(domain string) bool {
	if len(u.Sites) == 0 {
		return true
	}
	for _, s := range u.Sites {
		if s == domain {
			return true
		}
	}
	return false
}

// User returns the user whose address has the canonical form of email
// (CanonicalEmail), or nil.
func (f *File) User(email string) *User {
	c, err := CanonicalEmail(email)
	if err != nil {
		return nil
	}
	for i := range f.Users {
		if u, err := CanonicalEmail(f.Users[i].Email); err == nil && u == c {
			return &f.Users[i]
		}
	}
	return nil
}

// CanonicalEmail returns the one form of a dashboard user's e-mail address
// that everything comparing addresses uses (the users: lookup, the sign-in
// throttle, this file's duplicate check, glimpse user add): a bare address,
// printable ASCII only, in lower case. Any other address is refused, with
// an error saying why: Unicode case folding equates distinct strings ("ſ"
// and "s", the Kelvin sign and "k"), so a lookup that folded them and a
// throttle that did not would count one user's attempts apart. An
// internationalised domain has an ASCII form (xn--...).
func CanonicalEmail(email string) (string, error) {
	for i := 0; i < len(email); i++ {
		if c := email[i]; c < 0x20 || c > 0x7e {
			return "", fmt.Errorf("%q has characters outside printable ASCII; write an international domain in its xn-- form", email)
		}
	}
	if a, err := mail.ParseAddress(email); err != nil || a.Address != email || a.Name != "" {
		return "", fmt.Errorf("%q is not a bare e-mail address like ana@example.com", email)
	}
	return strings.ToLower(email), nil
}

// SharedLink is a read-only link to one site's dashboard: whoever holds
// the token reads that site, without signing in. Removing the link from
// the file (and reloading) revokes it.
type SharedLink struct {
	Name  string `yaml:"name"`  // appears in logs; required
	Token string `yaml:"token"` // MinSharedTokenLen or more of A-Z a-z 0-9 - _
}

// MinSharedTokenLen is the shortest accepted shared-link token: 22
// characters of base64url carry 128 bits (openssl rand -base64 24 | tr +/ -_).
const MinSharedTokenLen = 22

var (
	sharedToken = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	argon2idPHC = regexp.MustCompile(`^\$argon2id\$v=19\$m=([0-9]+),t=([0-9]+),p=([0-9]+)\$[A-Za-z0-9+/]{11,}\$[A-Za-z0-9+/]{22,}$`)
)

// MinBcryptCost is the lowest accepted bcrypt cost.
const MinBcryptCost = 10

// checkPasswordHash says what is wrong with a password hash, or "".
func checkPasswordHash(h string) string {
	switch {
	case h == "":
		return "missing; run `glimpse user add --email ...` and paste the line it prints"
	case strings.HasPrefix(h, "$2a$"), strings.HasPrefix(h, "$2b$"), strings.HasPrefix(h, "$2y$"):
		cost, err := bcrypt.Cost([]byte(h))
		if err != nil || len(h) != 60 {
			return "not a valid bcrypt hash (want 60 characters like $2a$12$...)"
		}
		if cost < MinBcryptCost {
			return fmt.Sprintf("bcrypt cost %d is too low; use at least %d", cost, MinBcryptCost)
		}
		return ""
	case strings.HasPrefix(h, "$argon2id$"):
		m := argon2idPHC.FindStringSubmatch(h)
		if m == nil {
			return "not a valid argon2id hash (want $argon2id$v=19$m=...,t=...,p=...$salt$hash)"
		}
		var mem, t, p int
		fmt.Sscan(m[1], &mem)
		fmt.Sscan(m[2], &t)
		fmt.Sscan(m[3], &p)
		if mem < 19456 || t < 1 || p < 1 || p > 255 || mem > 4<<20 {
			return "argon2id parameters too weak or out of range (want m >= 19456 KiB, t >= 1, 1 <= p <= 255)"
		}
		return ""
	}
	return "want a bcrypt ($2b$...) or argon2id ($argon2id$...) hash, never the password itself"
}

func (v *validator) users(f *File) {
	seen := map[string]int{}
	for i := range f.Users {
		u := &f.Users[i]
		at := []any{"users", i}
		c, err := CanonicalEmail(u.Email)
		switch {
		case u.Email == "":
			v.fail(append(at, "email"), "missing; each user signs in with an e-mail address")
		case err != nil:
			v.fail(append(at, "email"), "%v", err)
		default:
			if j, dup := seen[c]; dup {
				v.fail(append(at, "email"), "%q is already users[%d]", u.Email, j)
			}
			seen[c] = i
		}
		if msg := checkPasswordHash(u.PasswordHash); msg != "" {
			v.fail(append(at, "password_hash"), "%s", msg)
		}
		for j, s := range u.Sites {
			if f.Site(s) == nil {
				v.fail(append(at, "sites", j), "%q is not a configured site domain", s)
			}
		}
	}
}

func (v *validator) sharedLinks(s *Site, at []any, tokens map[string]string) {
	names := map[string]bool{}
	for j, l := range s.SharedLinks {
		lat := append(append([]any{}, at...), "shared_links", j)
		v.named(lat, l.Name, names, "link", "of this site")
		switch {
		case len(l.Token) < MinSharedTokenLen:
			v.fail(append(lat, "token"), "%d characters is too short; use at least %d random ones (e.g. openssl rand -base64 24 | tr +/ -_)", len(l.Token), MinSharedTokenLen)
		case !sharedToken.MatchString(l.Token):
			v.fail(append(lat, "token"), "use only A-Z, a-z, 0-9, - and _ (it goes into URLs)")
		default:
			if prev, dup := tokens[l.Token]; dup {
				v.fail(append(lat, "token"), "same token as %s; every link needs its own", prev)
			}
			tokens[l.Token] = fieldName(lat)
		}
	}
}
