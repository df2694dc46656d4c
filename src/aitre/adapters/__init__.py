"""One module per upstream protocol, behind the small interface in `base`."""
