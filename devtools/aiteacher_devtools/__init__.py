"""AI-Teacher developer and deployment tooling: the local gateway and dev server, the web-app build,
and the generators of every deployment file (`aiteacher manifests`). Installed next to `aiteacher` by
`make install`; a separate distribution (devtools/pyproject.toml) that no function image installs."""
