package email

import (
	"bytes"
	"errors"
	"fmt"
	"html"
	"io"
	"strings"

	nethtml "golang.org/x/net/html"
)

// RewriteResult reports what Rewrite did.
type RewriteResult struct {
	Links int // links turned into tracked links
	// Skipped lists http(s) links left as they were, with the reason
	// ("https://x/?u={{id}}: merge tag"): a link the ESP personalises per
	// recipient cannot be signed once for all.
	Skipped []string
	Pixel   bool // the open pixel was added
}

// mergeTagMarks are the ESP merge-tag delimiters a link may contain
// (Mustache/Handlebars/Liquid {{ }} and {% %}, Mailchimp *| |*,
// Salesforce/ExactTarget %% %%, Mailgun/SendGrid [[ ]]/-name-), also
// percent-encoded.
var mergeTagMarks = []string{"{{", "}}", "{%", "%}", "*|", "|*", "%%", "[[", "]]", "%7b%7b", "%7d%7d", "%7b%25", "*%7c", "%7c*"}

func hasMergeTag(s string) bool {
	l := strings.ToLower(s)
	for _, m := range mergeTagMarks {
		if strings.Contains(l, m) {
			return true
		}
	}
	return false
}

// maxRewriteInput bounds the HTML Rewrite reads (emails are far smaller;
// Gmail clips messages above 102 KB).
const maxRewriteInput = 8 << 20

// Rewrite copies the HTML email in r to w, turning every http(s) link
// (href of <a>, <area> and Outlook VML elements such as <v:roundrect>,
// also inside <!--[if mso]> conditional comments) into a tracked link,
// and adding the open pixel before </body> (or at the end). Everything
// else is copied byte for byte: mailto:, tel:, sms:, anchors, relative
// links, merge tags such as {{unsubscribe}} or *|UNSUB|*, links already
// pointing at this collector, comments and whitespace.
func (m *Minter) Rewrite(w io.Writer, r io.Reader, p Mint) (RewriteResult, error) {
	var res RewriteResult
	src, err := io.ReadAll(io.LimitReader(r, maxRewriteInput+1))
	if err != nil {
		return res, fmt.Errorf("cannot read the HTML: %w", err)
	}
	if len(src) > maxRewriteInput {
		return res, errors.New("the HTML is larger than 8 MiB")
	}
	pixel, err := m.PixelTag(p)
	if err != nil {
		return res, err
	}
	var out bytes.Buffer
	out.Grow(len(src) + len(src)/4)
	rw := rewriter{m: m, p: p, res: &res, pixel: pixel}
	if err := rw.rewrite(&out, src, true); err != nil {
		return res, err
	}
	if !res.Pixel {
		out.WriteString(pixel)
		res.Pixel = true
	}
	_, err = w.Write(out.Bytes())
	return res, err
}

type rewriter struct {
	m     *Minter
	p     Mint
	res   *RewriteResult
	pixel string
	raw   []byte
}

func (rw *rewriter) rewrite(out *bytes.Buffer, src []byte, top bool) error {
	z := nethtml.NewTokenizer(bytes.NewReader(src))
	for {
		tt := z.Next()
		if tt == nethtml.ErrorToken {
			if z.Err() == io.EOF {
				return nil
			}
			return fmt.Errorf("cannot tokenize the HTML: %w", z.Err())
		}
		// Copy the raw bytes first: TagName and TagAttr lower-case the
		// tokenizer's buffer in place.
		rw.raw = append(rw.raw[:0], z.Raw()...)
		switch tt {
		case nethtml.StartTagToken, nethtml.SelfClosingTagToken:
			if !rw.tag(out, z, tt == nethtml.SelfClosingTagToken) {
				out.Write(rw.raw)
			}
		case nethtml.EndTagToken:
			if name, _ := z.TagName(); top && !rw.res.Pixel && string(name) == "body" {
				out.WriteString(rw.pixel)
				rw.res.Pixel = true
			}
			out.Write(rw.raw)
		case nethtml.CommentToken:
			if err := rw.comment(out); err != nil {
				return err
			}
		default:
			out.Write(rw.raw)
		}
	}
}

// comment rewrites the markup inside an Outlook conditional comment
// (<!--[if mso]>...<![endif]-->) and copies any other comment.
func (rw *rewriter) comment(out *bytes.Buffer) error {
	raw := rw.raw
	if !bytes.HasPrefix(raw, []byte("<!--[if")) || !bytes.HasSuffix(raw, []byte("-->")) {
		out.Write(raw)
		return nil
	}
	i := bytes.IndexByte(raw, '>')
	if i < 0 || i+1 > len(raw)-3 {
		out.Write(raw)
		return nil
	}
	inner := append([]byte(nil), raw[i+1:len(raw)-3]...)
	out.Write(raw[:i+1])
	if err := rw.rewrite(out, inner, false); err != nil {
		return err
	}
	out.WriteString("-->")
	return nil
}

// tag rewrites the href of a link tag; it returns false when the tag is to
// be copied unchanged.
func (rw *rewriter) tag(out *bytes.Buffer, z *nethtml.Tokenizer, selfClosing bool) bool {
	name, hasAttr := z.TagName()
	if !hasAttr {
		return false
	}
	tag := string(name)
	if tag != "a" && tag != "area" && !strings.HasPrefix(tag, "v:") {
		return false
	}
	type attr struct{ k, v string }
	var attrs []attr
	changed := false
	for more := true; more; {
		var k, v []byte
		k, v, more = z.TagAttr()
		a := attr{string(k), string(v)}
		if a.k == "href" && !changed {
			if link, ok := rw.link(a.v); ok {
				a.v, changed = link, true
			}
		}
		attrs = append(attrs, a)
	}
	if !changed {
		return false
	}
	out.WriteByte('<')
	out.WriteString(tag)
	for _, a := range attrs {
		out.WriteByte(' ')
		out.WriteString(a.k)
		out.WriteString(`="`)
		out.WriteString(html.EscapeString(a.v))
		out.WriteByte('"')
	}
	if selfClosing {
		out.WriteString(" /")
	}
	out.WriteByte('>')
	return true
}

// link returns the tracked link for href, or false to keep href.
func (rw *rewriter) link(href string) (string, bool) {
	h := strings.TrimSpace(href)
	l := strings.ToLower(h)
	if !strings.HasPrefix(l, "http://") && !strings.HasPrefix(l, "https://") {
		return "", false // mailto:, tel:, #anchor, relative, {{unsubscribe}}, *|UNSUB|*
	}
	if rw.m.Base != "" && strings.HasPrefix(h, rw.m.Base+"/") {
		return "", false // already ours
	}
	if hasMergeTag(h) {
		rw.res.Skipped = append(rw.res.Skipped, h+": merge tag")
		return "", false
	}
	link, err := rw.m.Link(rw.p, h)
	if err != nil {
		rw.res.Skipped = append(rw.res.Skipped, h+": "+err.Error())
		return "", false
	}
	rw.res.Links++
	return link, true
}
