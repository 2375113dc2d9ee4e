-- Argo CD health check for keyrotor.dev/ApiKeyRotation.
--
-- Reads only status.observedGeneration and the conditions keyrotor writes
-- (src/conditions.rs): Ready (summary), Progressing, MigrationStalled.
--   Progressing  keyrotor has not yet seen this generation, or the first key
--                is not published yet (Ready=False Initializing/AdoptionPending)
--   Degraded     Ready=False for any other reason (invalid spec, Secret name
--                clash, lost key material), or MigrationStalled=True
--   Suspended    spec.suspend with nothing wrong
--   Healthy      Ready=True: the published keys are valid. A rotation in
--                flight stays Healthy (it may wait days for consumers and a
--                grace period; the message names the stage) so that it never
--                holds up sync waves or app health.
local hs = {}

local function condition(status, kind)
  if status == nil or status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function msg(c)
  if c.message ~= nil and c.message ~= "" then
    return c.reason .. ": " .. c.message
  end
  return c.reason
end

local status = obj.status
local generation = obj.metadata.generation
if status == nil or status.observedGeneration == nil
    or (generation ~= nil and status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for keyrotor to observe the latest spec"
  return hs
end

local ready = condition(status, "Ready")
local stalled = condition(status, "MigrationStalled")
local progressing = condition(status, "Progressing")

if ready == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for keyrotor to report readiness"
  return hs
end

if ready.status == "False" then
  if ready.reason == "Initializing" or ready.reason == "AdoptionPending" then
    hs.status = "Progressing"
  else
    hs.status = "Degraded"
  end
  hs.message = msg(ready)
  return hs
end

if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = msg(stalled)
  return hs
end

if obj.spec ~= nil and obj.spec.suspend == true then
  hs.status = "Suspended"
  hs.message = msg(ready)
  return hs
end

if ready.status == "True" then
  hs.status = "Healthy"
  if progressing ~= nil and progressing.status == "True" then
    hs.message = "Rotating (" .. msg(progressing) .. "); " .. ready.message
  else
    hs.message = msg(ready)
  end
  return hs
end

hs.status = "Progressing"
hs.message = msg(ready)
return hs
