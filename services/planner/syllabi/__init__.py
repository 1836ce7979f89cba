"""Built-in syllabus registry files (one TOML file per exam); a package so they ship in wheels."""
