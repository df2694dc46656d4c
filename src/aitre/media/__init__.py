"""Media the gateway keeps (generated images, audio, video) and fetches on clients' behalf."""
