package redact

// The user rule: a path segment right after one that names a collection
// of people is that person's name, handle or id (/users/eve.smith,
// /members/1234, /user/jdoe). The collections are named in the plural, as
// REST and most sites name them; of the singulars only "user", which
// Drupal and Reddit use for people, since "/account/orders" or
// "/profile/edit" are pages of the visitor's own. Not collections of
// people: "/u/" (Google's "/mail/u/0/" counts accounts in a browser) and
// "/accounts/" (django-allauth's sign-in pages, /accounts/google/login/).

// isPeople reports whether seg names a collection of people.
func isPeople(seg []byte) bool {
	if len(seg) > len("participants") || !isAlpha(seg[0]) {
		return false
	}
	switch toLower(seg[0]) {
	case 'u', 'm', 'p', 'c', 'a', 'e', 's':
	default:
		return false
	}
	var buf [len("participants")]byte
	switch string(lower(buf[:0], seg)) {
	case "users", "user", "members", "people", "persons", "profiles", "customers",
		"employees", "patients", "students", "participants", "contacts":
		return true
	}
	return false
}

// isCollectionPage reports whether seg, after a collection of people, is
// a page of the collection rather than one person: /users/new,
// /users/sign_in (Rails' Devise), /user/login (Drupal), /members/search.
func isCollectionPage(seg []byte) bool {
	if len(seg) > len("registrations") {
		return false
	}
	var buf [len("registrations")]byte
	switch string(lower(buf[:0], seg)) {
	case "new", "edit", "me", "self", "current", "index", "list", "all", "search", "create",
		"login", "logout", "signin", "signout", "signup", "sign_in", "sign_out", "sign_up",
		"sign-in", "sign-out", "sign-up", "log_in", "log_out", "register", "registration",
		"registrations", "password", "passwords", "reset", "forgot", "confirmation", "confirm",
		"unlock", "cancel", "invitation", "invitations", "invite", "auth", "oauth", "sessions", "session",
		"settings", "profile", "account", "preferences", "notifications", "verify",
		"verification", "activate", "onboarding", "directory", "export", "import":
		return true
	}
	return false
}

func lower(dst, s []byte) []byte {
	for _, c := range s {
		dst = append(dst, toLower(c))
	}
	return dst
}
