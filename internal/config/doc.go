// Package config holds the agent's configuration: the Config struct, its
// defaults (enough to run with no file at all), a strict YAML loader whose
// errors name the file and line, and the binding that makes every key a
// command-line flag of the same name (snake_case key, kebab-case flag:
// metrics_addr is --metrics-addr). Precedence: defaults, then the file,
// then the flags the user actually gave.
//
// Nothing here is shared between goroutines; a Config is a plain value.
package config
