"""What gato-mini shows people: tables in the terminal, and later reports and plots."""
