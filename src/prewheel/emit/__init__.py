"""Files emitted into a wheelhouse for the deploy side."""
