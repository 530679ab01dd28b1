"""Password hashing and JWTs."""
