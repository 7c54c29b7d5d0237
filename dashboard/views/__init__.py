"""HTML pages: the landing page, sign-in, the customer portal (/portal/) and the public demo pages."""
