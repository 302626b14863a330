// Package public holds the web dashboard, embedded in the keyflux binary so
// it runs with no CDN and no build step: plain JavaScript modules loaded by
// the browser as they are.
package public

import "embed"

// Files are the dashboard's static files, served at /, and the browser
// client keyflux.js with its types.
//
//go:embed index.html style.css app.js log.js pins.js rates.js format.js identity.js keyflux.js keyflux.d.ts
var Files embed.FS
