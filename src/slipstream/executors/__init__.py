"""The work queue: how ready task instances reach workers, and how their ends come back."""
