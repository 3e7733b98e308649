"""Site use cases, one module each: the site index, staff access, administration, search and the day list."""
