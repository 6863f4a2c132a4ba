"""The only code that imports ray: thin translations between Ray and the plain modules."""
