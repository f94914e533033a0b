// Package csvcell keeps the text in Glimpse's CSV exports (the
// dashboard's panels, subject exports) from running as a formula when the
// file is opened in a spreadsheet: CSV injection. Visitors choose much of
// that text (paths, referrers, campaign names, property keys and values).
package csvcell

// triggers are the characters a spreadsheet may read a cell starting with
// as a formula (OWASP, "CSV Injection"): = + - @, tab and carriage return.
const triggers = "=+-@\t\r"

// Text returns s as a cell that a spreadsheet shows as text: s prefixed
// with an apostrophe if it starts with a trigger, which Excel, LibreOffice
// and Google Sheets take as "this is text" and keep visible. Every cell
// that holds text goes through it, header cells too; numbers that Glimpse
// formats itself need not, and must not (a leading minus is their sign).
func Text(s string) string {
	if s != "" && isTrigger(s[0]) {
		return "'" + s
	}
	return s
}

func isTrigger(c byte) bool {
	for i := 0; i < len(triggers); i++ {
		if triggers[i] == c {
			return true
		}
	}
	return false
}
