package aggregator

import "strings"

// sqlb builds SQL text from fixed fragments and binds every value as a
// positional argument: nothing from a request is written into the text.
type sqlb struct {
	b    strings.Builder
	args []any
}

func (s *sqlb) w(parts ...string) *sqlb {
	for _, p := range parts {
		s.b.WriteString(p)
	}
	return s
}

func (s *sqlb) arg(v any) *sqlb {
	s.b.WriteByte('?')
	s.args = append(s.args, v)
	return s
}

// sub appends another builder's text and arguments.
func (s *sqlb) sub(o *sqlb) *sqlb {
	s.b.WriteString(o.b.String())
	s.args = append(s.args, o.args...)
	return s
}

func (s *sqlb) String() string { return s.b.String() }
