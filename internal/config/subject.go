package config

// subjectKey validates a site's subject key: required in mode consented
// (a consented user id is stored only as its keyed hash), refused in the
// other modes (they store no subject ids), and at least MinSigningKeyLen
// bytes.
func (v *validator) subjectKey(p *Privacy, at []any) {
	if p.SubjectKey != "" && p.SubjectKeyEnv != "" {
		v.fail(append(at, "subject_key"), "give either subject_key or subject_key_env, not both")
		return
	}
	field := "subject_key"
	if p.SubjectKeyEnv != "" {
		field = "subject_key_env"
		p.SubjectKey = getenv(p.SubjectKeyEnv)
		if p.SubjectKey == "" {
			v.fail(append(at, field), "environment variable %s is empty or not set", p.SubjectKeyEnv)
			return
		}
	}
	switch {
	case p.Mode != ModeConsented && p.SubjectKey != "":
		v.fail(append(at, field), "only mode consented stores subject ids; remove the key or set mode: consented")
	case p.Mode == ModeConsented && p.SubjectKey == "":
		v.fail(append(at, "subject_key"), "mode consented needs a key to hash user ids with; set subject_key_env (e.g. to a variable holding openssl rand -base64 32)")
	case p.Mode == ModeConsented && len(p.SubjectKey) < MinSigningKeyLen:
		v.fail(append(at, field), "%d bytes is too short; use at least %d random bytes (e.g. openssl rand -base64 32)", len(p.SubjectKey), MinSigningKeyLen)
	}
}
