//go:build !race

package noise

// nSamples is the number of draws per scale in the distribution tests.
const nSamples = 200_000
