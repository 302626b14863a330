// Package public holds the web dashboard, embedded in the keyflux binary so
// it runs with no CDN and no build step.
package public

import "embed"

// Files are the dashboard's static files, served at /.
//
//go:embed index.html
var Files embed.FS
