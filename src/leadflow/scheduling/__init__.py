"""Consultation booking: consultants' availability, busy times, bookings and their invitations."""
