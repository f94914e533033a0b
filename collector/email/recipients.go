package email

import (
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/glimpse-analytics/glimpse/internal/model"
)

// Contribution cap. On a site whose aggregates are noisy, the noise on
// email numbers is calibrated to what one recipient can add in a UTC
// day: at most model.MaxEmailPerRecipientDay opens and clicks are stored
// per recipient pseudonym and day, in a ledger of fixed size
// (collector/ledger). Beyond them an open or a click is counted
// (outcome contribution_cap) and not stored; the pixel and the redirect
// are served all the same. Opens and clicks without a recipient are each
// their own unit, unbounded.

// recipientDay is the opens and clicks a recipient-day has stored: the
// ledger's value, no pointer.
type recipientDay struct {
	n uint32
}

// recipientKey is the ledger's key of t's recipient: a hash of site and
// recipient (the ledger's site is then always 0).
func recipientKey(t *Token) uint64 {
	var d xxhash.Digest
	d.Reset()
	_, _ = d.WriteString(t.Site)
	_, _ = d.Write([]byte{0})
	_, _ = d.WriteString(t.Recipient)
	return d.Sum64()
}

// admit counts an open or a click of t's recipient at now and reports
// whether it is within the day's cap.
func (h *Handlers) admit(t *Token, now time.Time) bool {
	ok := false
	h.recipients.Update(0, recipientKey(t), now, func(v *recipientDay) {
		if v.n < model.MaxEmailPerRecipientDay {
			v.n++
			ok = true
		}
	})
	return ok
}

// refund gives back what admit counted for an event that was not stored.
func (h *Handlers) refund(t *Token, now time.Time) {
	h.recipients.Update(0, recipientKey(t), now, func(v *recipientDay) {
		v.n -= min(v.n, 1)
	})
}
