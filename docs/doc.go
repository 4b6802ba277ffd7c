// Package docs holds no code: it is the home of Vigil's documentation pages
// (the Markdown files next to this one, which README.md links to) and of the
// test that keeps their links working: every relative link of README.md and
// docs/*.md must name a file of the repository, and every #fragment a
// heading of the page it points to.
package docs
