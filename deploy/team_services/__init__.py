"""The services of the team stack (``deploy/team_stack.py``), one module each, and what they share:
the state folder's private files and the processes they run as."""
