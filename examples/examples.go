// Package examples embeds the example model repository that shoal serves
// when it is given no model (the README's first command), so a fresh
// machine needs no setup. The models are produced by the scripts beside it.
package examples

import "embed"

// Models is the example model repository, rooted at "models".
//
//go:embed models
var Models embed.FS
