// Command tiny is a small static binary that stands in for shoal in the
// image build test of the docker backend, which only builds and loads an
// image (compressing the real 30 MB binary takes minutes under the race
// detector).
package main

func main() {}
