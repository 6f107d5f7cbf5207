"""Package registry domain: packages, their files, and who may upload and download them."""
