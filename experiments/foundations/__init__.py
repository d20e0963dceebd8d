"""Foundation labs: days 1-14 of the plan (aN_ = week 1, bN_ = GPU week)."""
