"""The built-in CRM: the business's users and teams, leads (contacts with a sales status and an
owner) and their activity timeline. Deals, routing and SLAs plug into these tables later: an owner is
a CRM user id, a team has a lead user."""
