"""Generated demo tasks the small local model starts weak at and learns: catalog names, destinations, dates."""
