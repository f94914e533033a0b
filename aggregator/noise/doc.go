// Package noise draws the noise of Glimpse's disclosure control from a
// keyed pseudorandom stream, with integer arithmetic only.
package noise
