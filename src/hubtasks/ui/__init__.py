"""What people see: the console (rich on a terminal, plain lines otherwise), the one
redaction filter, and the loggers of the libraries under the Python API."""
