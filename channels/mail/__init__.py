"""E-mail and fax-to-email: the SMTP server, reading a message, and faxes among them."""
