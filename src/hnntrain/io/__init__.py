"""Files in and out: config resolution (TOML, --set), datasets, measured-curve fitting, plotting set-up."""
