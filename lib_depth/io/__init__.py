"""Files in and out: opening images and user depth maps, pairing frames with maps, writing files
safely (never over an existing one)."""
