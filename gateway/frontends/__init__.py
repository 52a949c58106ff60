"""What people and systems read and act through: the API (with Open311) and the console."""
