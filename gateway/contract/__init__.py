"""What every part is given and shares: the contact a channel hands to intake, the errors,
the job kinds, the settings (config.yaml), the vocabulary (labels, tracking numbers) and
structured, masked logs. Imports nothing of the gateway above it."""
