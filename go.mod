module github.com/agora-mirror/agora

go 1.26.8

require (
	github.com/BurntSushi/toml v1.6.0
	golang.org/x/mod v0.43.0
	golang.org/x/sync v0.25.0
)
